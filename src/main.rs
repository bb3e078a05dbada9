// mimalloc rather than the system allocator: a request allocates and frees thousands of
// small values across threads, and glibc's malloc was an eighth of the server's CPU
// under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tierwise_api::cli::main()
}
