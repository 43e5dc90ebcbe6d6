//! The CPU time of the calling thread (`getrusage(RUSAGE_THREAD)`), so the generator and the
//! sink can each say what they cost; the whole process's comes from
//! [`sockopt::cpu_seconds`](crate::udp_baseline::sockopt::cpu_seconds).

#![allow(
    unsafe_code,
    reason = "getrusage has no safe wrapper in std or in the nix features this crate enables"
)]

/// The calling thread's CPU time so far (user + system), in seconds; 0 if it cannot be read.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value for getrusage to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a live, writable rusage for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_thread_counts_its_own_time() {
        let t = std::thread::spawn(|| {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed().as_millis() < 30 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            (x, super::thread_cpu_seconds())
        });
        let (_, cpu) = t.join().unwrap();
        assert!(cpu > 0.005 && cpu < 5.0, "{cpu}");
    }
}
