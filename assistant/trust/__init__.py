"""Trust: the home CA, pairing codes and API tokens (DESIGN.md section 4).

    ca.py        HomeCA: the gateway's certificate authority; device and gateway certificates,
                 TLS contexts, and reading a peer's serial and name (for the revoked list)
    pairing.py   PairingCodes: one-time, expiring, rate-limited codes shown by the gateway
    tokens.py    API tokens: new, hashed for storage, verified in constant time

The worker's half lives in `edge_worker.service.credentials` (its key, CSR and certificate) and
`edge_worker.comm.tls` (mutual TLS on ring sockets).
"""
