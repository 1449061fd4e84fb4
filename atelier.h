// The umbrella header: everything a user of atelier needs.
#pragma once

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "backends/backend.h"
#include "backends/error.h"
#include "backends/thread_pool.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"
#include "tensor/tensor.h"
