#include "thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace bmxnet {
namespace kernels {
namespace {

constexpr auto kStayAwake = std::chrono::milliseconds(2);

class ThreadPool {
 public:
  void Run(int threads, const std::function<void(int)>& share) {
    std::lock_guard<std::mutex> turn(run_mutex_);
    Prepare(threads - 1);
    share_ = &share;
    team_ = threads;
    pending_.store(static_cast<int>(workers_->size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    share(0);
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  // Workers are never stopped: the pool lives as long as the process. A forked child
  // has none of its parent's threads, so it starts a fresh set (the parent's handles are
  // left alone: joining or destroying them there would abort).
  void Prepare(int wanted) {
    if (owner_ != getpid()) {
      workers_ = new std::vector<std::thread>();
      owner_ = getpid();
    }
    while (static_cast<int>(workers_->size()) < wanted) {
      const int index = static_cast<int>(workers_->size()) + 1;
      workers_->emplace_back([this, index, seen = generation_.load()] { Work(index, seen); });
      workers_->back().detach();
    }
  }

  void Work(int index, uint64_t seen) {
    for (;;) {
      const auto idle_since = std::chrono::steady_clock::now();
      while (generation_.load(std::memory_order_acquire) == seen) {
        if (std::chrono::steady_clock::now() - idle_since > kStayAwake) {
          std::unique_lock<std::mutex> lock(wake_mutex_);
          wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
          break;
        }
        std::this_thread::yield();
      }
      seen = generation_.load(std::memory_order_acquire);
      if (index < team_) (*share_)(index);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex run_mutex_, wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* share_ = nullptr;
  int team_ = 1;
  std::vector<std::thread>* workers_ = nullptr;
  pid_t owner_ = -1;
};

}  // namespace

void ParallelFor(int64_t tasks, int threads, const std::function<void(int64_t, int64_t)>& body) {
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
  if (threads == 1) {
    if (tasks > 0) body(0, tasks);
    return;
  }
  static ThreadPool* pool = new ThreadPool();  // never destroyed: see Prepare
  pool->Run(threads, [&](int index) { body(tasks * index / threads, tasks * (index + 1) / threads); });
}

}  // namespace kernels
}  // namespace bmxnet
