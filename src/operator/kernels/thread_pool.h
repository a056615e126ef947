// The threads of the packed (xnor + popcount) kernels. Those layers take tens of
// microseconds, about what waking a sleeping OpenMP thread costs on a busy machine (and
// MXNet's own thread teams keep libgomp from spinning: it throttles waiting threads once
// more threads exist than cores). The pool's threads stay awake for a short while after
// each job (kStayAwake in thread_pool.cc), yielding the core to any other runnable thread,
// so back-to-back layers find them ready; one that missed a job is moved off the CPUs of
// those that took part.
#ifndef BMXNET_KERNELS_THREAD_POOL_H_
#define BMXNET_KERNELS_THREAD_POOL_H_

#include <cstdint>
#include <functional>

namespace bmxnet {
namespace kernels {

// Runs body(begin, end) over contiguous chunks that together cover [0, tasks) once, on
// up to `threads` threads (the caller is one of them), and returns when all are done. A
// thread may run several chunks; a body must not throw. Calls from several threads at
// once take turns.
void ParallelFor(int64_t tasks, int threads, const std::function<void(int64_t, int64_t)>& body);

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_THREAD_POOL_H_
