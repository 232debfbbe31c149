"""Clients of the two WhatsApp providers: Meta's Cloud API and RyzeAPI-compatible gateways."""
