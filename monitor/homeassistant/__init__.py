"""Home Assistant MQTT discovery for the fleet (opt-in: ``CLAWBEAT_HOMEASSISTANT_DISCOVERY``)."""
