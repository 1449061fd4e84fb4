// The CPU's system memory for the caching allocator: aligned_alloc and free.
#include "backends/cpu/cpu_allocator.h"

#include <cstdlib>

namespace atelier {

namespace {

void* cpu_system_allocate(size_t bytes) { return std::aligned_alloc(CpuAllocator::kAlignment, bytes); }
void cpu_system_release(void* ptr) noexcept { std::free(ptr); }

}  // namespace

CpuAllocator::CpuAllocator() : CachingAllocator(SystemMemory{"cpu", &cpu_system_allocate, &cpu_system_release}) {}

}  // namespace atelier
