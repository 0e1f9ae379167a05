"""Speech in, intent, speech out: the voice turn."""
