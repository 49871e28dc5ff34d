pub mod authorization;
pub mod conditional_open;
pub mod demand;
pub mod registration;
pub mod sources;
pub mod supervision;
pub mod wuzhong;
