#include "dm_trim.h"
