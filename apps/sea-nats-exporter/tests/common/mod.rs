#![allow(dead_code)] // each test binary uses a part

pub mod deploy;
pub mod fixtures;
pub mod names;
