//! The HTTP interface: the router and handlers over `AppState` (`api`, with `/watch`,
//! `/history` and `/restore` in `api::watching`), the listener with its connection
//! limits (`server`), and the HTML status page (`status_page`).

pub mod api;
pub mod server;
pub mod status_page;
