#define _GNU_SOURCE
#include <math.h>
#include "CTriplineSupport.h"

void tripline_sincos(double x, double *s, double *c) {
    sincos(x, s, c);
}
