pub(crate) mod swtpm;
