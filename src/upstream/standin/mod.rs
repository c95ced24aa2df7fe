//! TEMPORARY STUB until the stand-in branch is merged.
use std::net::SocketAddr;
use std::sync::Arc;
pub struct StandinApp {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_urls: Vec<String>,
    pub distributed: bool,
    pub rotation: bool,
}
pub struct StandinUser;
impl StandinUser {
    pub fn fixtures() -> Vec<StandinUser> {
        vec![]
    }
}
pub struct StandinOptions {
    pub listen: SocketAddr,
    pub apps: Vec<StandinApp>,
    pub users: Vec<StandinUser>,
    pub exact_slack_mode: bool,
}
pub struct Control;
pub struct StandinHandle {
    pub base_url: String,
    pub control: Arc<Control>,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct StandinError;
pub async fn start(_o: StandinOptions) -> Result<StandinHandle, StandinError> {
    Err(StandinError)
}
