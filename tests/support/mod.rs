//! Servers the integration tests start on loopback in place of real code
//! hosts: the code host API emulator and real git servers. Not every test
//! binary uses every helper.
#![allow(dead_code)]

pub mod codehost;
pub mod git_http;
pub mod smtp_sink;
pub mod sshd;
