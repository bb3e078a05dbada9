fn main() {
    tierwise_api::cli::main()
}
