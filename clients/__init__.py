"""Agents and the command line, installed as ``secagg.clients``."""
