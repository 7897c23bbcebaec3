//! Exit codes shared by the binaries (BSD `sysexits.h` where one fits).

/// A configuration or command-line error: nothing was started.
pub const CONFIG: u8 = 64;
