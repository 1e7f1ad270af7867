"""Releasing what the project makes: inverter stacks to the Hub."""
