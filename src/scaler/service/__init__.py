"""The imperative shell: the asyncio loop, its lifecycle and the control API."""
