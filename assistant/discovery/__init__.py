"""Zeroconf (mDNS / DNS-SD) for the gateway: advertise the gateway, browse for workers.

Discovery is not trust (DESIGN.md section 4): what is found here is only a device to offer for
pairing. Loopback only unless the operator configures interfaces explicitly.
"""

from assistant.discovery.mdns import GatewayDiscovery, SeenWorker

__all__ = ["GatewayDiscovery", "SeenWorker"]
