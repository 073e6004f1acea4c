"""Adapters: the implementations of the ports in ``scaler.ports`` that touch the world."""
