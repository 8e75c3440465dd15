// The Eclipse Mosquitto client library from Debian (libmosquitto-dev): MQTT receivers.
#include <mosquitto.h>
