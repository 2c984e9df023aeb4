#include "dm_hclient.h"
