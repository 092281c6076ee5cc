#ifndef GPTB_BASE_MUTEX_H_
#define GPTB_BASE_MUTEX_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace gptb {

// std::mutex with Clang's thread-safety annotations, so that ABSL_GUARDED_BY state is checked at
// compile time (clang -Wthread-safety) to be touched only under its lock. Not absl::Mutex: the
// system Abseil is not built with ThreadSanitizer, whose runtime sees std::mutex (pthread) but
// not absl::Mutex's own atomics, so every hand-off through an absl::Mutex would be reported as a
// race.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells the analysis the lock is held where it cannot see it (a condition-variable predicate
  // runs under the lock its wait holds).
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable over a held Mutex. The predicates run with the Mutex held: they may read
// the state it guards (call mu->AssertHeld() in them for the analysis).
class CondVar {
 public:
  void NotifyAll() { cv_.notify_all(); }

  template <typename Predicate>
  void Wait(Mutex* mu, Predicate predicate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock, predicate);
    lock.release();
  }
  // Returns predicate() at the end: false when `timeout` passed first.
  template <typename Predicate>
  bool WaitFor(Mutex* mu, absl::Duration timeout, Predicate predicate)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool result = cv_.wait_for(lock, ToChrono(timeout), predicate);
    lock.release();
    return result;
  }
  // Waits for a notification or `timeout`, whichever comes first.
  void WaitFor(Mutex* mu, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait_for(lock, ToChrono(timeout));
    lock.release();
  }

 private:
  static std::chrono::nanoseconds ToChrono(absl::Duration d) {
    // An infinite or huge timeout would overflow the clock arithmetic inside wait_for.
    const absl::Duration capped = std::min(d, absl::Hours(24 * 365));
    return absl::ToChronoNanoseconds(std::max(capped, absl::ZeroDuration()));
  }
  std::condition_variable cv_;
};

}  // namespace gptb

#endif  // GPTB_BASE_MUTEX_H_
