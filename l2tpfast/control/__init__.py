"""The sans-IO control plane: RFC 2661 5.8 reliable channel, 7.2 tunnel and 7.4/7.5 session machines."""
