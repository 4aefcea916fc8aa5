"""The cloud adapter: MQTT link, durable outbox, message contract and sealed profiles."""
