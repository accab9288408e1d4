#!/usr/bin/env python3
"""The common way to build an MQTT-to-Kafka ingestor in Python (paho-mqtt + confluent-kafka),
measured beside mqtt-ingestor. It forwards payloads keyed by topic, like the C ingestor, but
without Avro framing (which would only make it slower). Stops after N messages."""
import sys
import time

import paho.mqtt.client as mqtt
from confluent_kafka import Producer

host, port, bootstrap, topic, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
done = {"n": 0}


def on_message(client, userdata, msg):
    while True:
        try:
            producer.produce(topic, msg.payload, key=msg.topic)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
    done["n"] += 1


client = mqtt.Client(client_id="py-ingestor", clean_session=True)
client.on_message = on_message
client.on_connect = lambda c, u, f, rc: c.subscribe("#", qos=1)
client.max_inflight_messages_set(1000)
client.connect(host, port)
client.loop_start()
print("ready", flush=True)
while done["n"] < n:
    time.sleep(0.01)
client.loop_stop()
producer.flush(30)
