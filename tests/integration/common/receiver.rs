//! A stand-in application endpoint that records what is POSTed to it (for
//! back-channel logout), on a free loopback port.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};

pub struct Receiver {
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::from(bodies.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(shared.clone()).route(
                "/backchannel",
                web::post().to(
                    |body: String, seen: web::Data<Mutex<Vec<String>>>| async move {
                        seen.lock().unwrap().push(body);
                        HttpResponse::Ok().finish()
                    },
                ),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url,
            bodies,
            handle,
        }
    }

    /// Waits (bounded) until `n` requests arrived; returns every body so far.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.bodies.lock().unwrap().clone();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
