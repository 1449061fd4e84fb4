// The umbrella header: everything a user of the atelier library (floors 1-4) needs. BEGAN (floor 5) is the
// separate library atelier::began: include its headers (began/...) and link it.
#pragma once

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "backends/backend.h"
#include "backends/error.h"
#include "backends/thread_pool.h"
#include "nn/checkpoint.h"
#include "nn/data/dataloader.h"
#include "nn/data/dataset.h"
#include "nn/data/idx.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"
#include "tensor/tensor.h"
