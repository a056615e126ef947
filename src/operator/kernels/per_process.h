// One instance of a type per process, for the kernels' process-wide state (the thread pool).
#ifndef BMXNET_KERNELS_PER_PROCESS_H_
#define BMXNET_KERNELS_PER_PROCESS_H_

#include <unistd.h>

#include <mutex>

namespace bmxnet {
namespace kernels {

// The process's T, made on first use. A forked child (a DataLoader worker, say) has none of
// its parent's threads and may have copied a mutex some other thread held, so it gets a
// fresh T; the parent's copy is left alone (destroying it could touch threads that do not
// exist in the child).
template <typename T>
T& PerProcess() {
  static std::mutex creation;
  static T* instance = nullptr;
  static pid_t owner = -1;
  const pid_t self = getpid();
  std::lock_guard<std::mutex> lock(creation);
  if (owner != self) {
    instance = new T();
    owner = self;
  }
  return *instance;
}

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_PER_PROCESS_H_
