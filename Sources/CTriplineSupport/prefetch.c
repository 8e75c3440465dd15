#include "CTriplineSupport.h"
