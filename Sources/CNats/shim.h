// The NATS C client (Debian's libnats-dev), for the cluster mode's JetStream streams and
// key-value buckets.
#include <nats/nats.h>
