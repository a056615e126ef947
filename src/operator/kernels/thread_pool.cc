#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "per_process.h"

namespace bmxnet {
namespace kernels {
namespace {

constexpr auto kStayAwake = std::chrono::microseconds(300);  // longer stole time from MXNet's ops
constexpr int kMaxThreads = 256;
constexpr int64_t kChunksPerShare = 8;

// Thread i of a job owns the i-th contiguous share of its tasks and takes them in order,
// a chunk at a time: the same thread then handles the same part of every layer's image
// (packing and convolving), which stays in its core's cache. A thread whose share is done
// takes chunks from the others' shares, so a worker the OS has not scheduled yet delays
// nothing. Jobs are open until the caller has seen every share taken; a worker joins a job
// only while it is open (all atomics are sequentially consistent, which the join/close
// handshake relies on).
class ThreadPool {
 public:
  void Run(int threads, int64_t tasks, const std::function<void(int64_t, int64_t)>& body) {
    std::lock_guard<std::mutex> turn(run_mutex_);
    threads = std::min(threads, kMaxThreads);
    Prepare(threads - 1);
    body_ = &body;
    shares_ = threads;
    for (int i = 0; i < threads; ++i) {
      share_[i].owned = 0;
      share_[i].next = tasks * i / threads;
      share_[i].end = tasks * (i + 1) / threads;
    }
    chunk_ = std::max<int64_t>(1, tasks / (threads * kChunksPerShare));
    cpu_[0] = sched_getcpu();
    open_ = true;
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      ++generation_;
    }
    wake_.notify_all();
    Help(0);
    open_ = false;
    while (active_ != 0) std::this_thread::yield();
    MoveLateWorkers(tasks);
  }

 private:
  struct alignas(64) Share {  // one cache line each: threads take chunks without contention
    std::atomic<int64_t> next{0};
    int64_t end = 0;
    std::atomic<int64_t> owned{0};  // chunks its own thread took
  };

  void Help(int self) {
    for (int i = 0; i < shares_; ++i) {
      Share& share = share_[(self + i) % shares_];
      int64_t chunks = 0;
      for (int64_t begin = share.next.fetch_add(chunk_); begin < share.end; begin = share.next.fetch_add(chunk_)) {
        (*body_)(begin, std::min(share.end, begin + chunk_));
        ++chunks;
      }
      if (i == 0) share.owned = chunks;
    }
  }

  void Prepare(int wanted) {
    while (static_cast<int>(workers_.size()) < wanted) {
      const int self = static_cast<int>(workers_.size()) + 1;
      cpu_[self] = -1;
      workers_.emplace_back([this, self, seen = generation_.load()] { Work(self, seen); });
      handle_[self] = workers_.back().native_handle();
      workers_.back().detach();
      cpu_set_t creators;
      CPU_ZERO(&creators);
      AddCpu(sched_getcpu(), &creators);
      MoveOff(handle_[self], creators);
    }
  }

  void Work(int self, uint64_t seen) {
    for (;;) {
      const auto idle_since = std::chrono::steady_clock::now();
      while (generation_ == seen) {
        if (std::chrono::steady_clock::now() - idle_since > kStayAwake) {
          std::unique_lock<std::mutex> lock(wake_mutex_);
          wake_.wait(lock, [&] { return generation_ != seen; });
          break;
        }
        std::this_thread::yield();
      }
      seen = generation_;
      ++active_;
      if (open_ && self < shares_) {
        cpu_[self] = sched_getcpu();
        Help(self);
      }
      --active_;
    }
  }

  // A worker woken (or started) on the CPU of the thread that woke it waits there while
  // that thread works, until the kernel's balancer moves it (which can take many of our
  // short jobs), or shares that CPU with it for good when it gets a time slice in every
  // job. So a worker that did less than half its share is moved off the CPUs of the threads
  // that did theirs (when it is elsewhere, that changes nothing), once until it does its
  // share again: a move costs about as much as one job (docs/performance.md).
  void MoveLateWorkers(int64_t tasks) {
    const auto did_its_share = [&](int i) {
      const int64_t size = tasks * (i + 1) / shares_ - tasks * i / shares_;
      return i == 0 || 2 * share_[i].owned * chunk_ >= size;
    };
    cpu_set_t busy;
    CPU_ZERO(&busy);
    bool late = false;
    for (int i = 0; i < shares_; ++i) {
      if (did_its_share(i)) {
        AddCpu(cpu_[i], &busy);
        moved_[i] = false;
      } else {
        late = true;
      }
    }
    if (!late) return;
    for (int i = 1; i < shares_; ++i)
      if (!did_its_share(i) && !moved_[i]) {
        MoveOff(handle_[i], busy);
        moved_[i] = true;
      }
  }

  static void AddCpu(int cpu, cpu_set_t* set) {
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, set);
  }

  // Narrowing a thread's affinity moves it at once; widening it again leaves it where it
  // is now, free to go anywhere later.
  static void MoveOff(pthread_t thread, const cpu_set_t& busy) {
    cpu_set_t allowed, elsewhere;
    if (pthread_getaffinity_np(thread, sizeof(allowed), &allowed) != 0) return;
    CPU_ZERO(&elsewhere);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed) && !CPU_ISSET(cpu, &busy)) CPU_SET(cpu, &elsewhere);
    if (CPU_COUNT(&elsewhere) == 0) return;  // more threads than CPUs
    if (pthread_setaffinity_np(thread, sizeof(elsewhere), &elsewhere) == 0)
      pthread_setaffinity_np(thread, sizeof(allowed), &allowed);
  }

  std::mutex run_mutex_, wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> active_{0};
  Share share_[kMaxThreads];
  std::atomic<int> cpu_[kMaxThreads];  // each thread's CPU when it last took part (0: the caller)
  pthread_t handle_[kMaxThreads];
  bool moved_[kMaxThreads] = {};  // since it last did its share
  int shares_ = 0;
  int64_t chunk_ = 1;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  std::vector<std::thread> workers_;  // detached: they never stop
};

}  // namespace

void ParallelFor(int64_t tasks, int threads, const std::function<void(int64_t, int64_t)>& body) {
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
  if (threads == 1) {
    if (tasks > 0) body(0, tasks);
    return;
  }
  PerProcess<ThreadPool>().Run(threads, tasks, body);  // a forked child gets a pool of its own
}

}  // namespace kernels
}  // namespace bmxnet
