//! The one rule for how many worker threads papersim's own work uses (the
//! CPU embedder, benchmarks, the server's query permits): `PAPERSIM_THREADS`
//! when set, else the caller's request, else every available core.

/// Environment variable that fixes the thread count (benchmarks, shared machines).
pub const THREADS_ENV: &str = "PAPERSIM_THREADS";

/// `PAPERSIM_THREADS` holds something other than a positive integer.
#[derive(Debug, thiserror::Error)]
#[error("{THREADS_ENV}={value:?}: expected a positive number of threads")]
pub struct ThreadsError {
    value: String,
}

/// Threads to use: `PAPERSIM_THREADS`, else `requested` (when positive), else
/// the available cores. A malformed `PAPERSIM_THREADS` is an error rather than
/// silently ignored, so a benchmark never runs on a count nobody asked for.
pub fn threads(requested: Option<usize>) -> Result<usize, ThreadsError> {
    match std::env::var(THREADS_ENV) {
        Ok(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(ThreadsError { value: s }),
        Err(_) => Ok(requested.filter(|&n| n > 0).unwrap_or_else(cores)),
    }
}

/// Cores the OS lets this process use (1 when it cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
