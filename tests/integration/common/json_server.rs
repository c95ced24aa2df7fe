//! A stand-in for an application's own web server, publishing one JSON
//! document (a `jwks_uri`, a `sector_identifier_uri`) on a free loopback
//! port. The document can be changed, or made to fail, while it runs, and
//! the GETs it answered are counted.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

#[derive(Default)]
struct Shared {
    /// `None`: answer 503.
    document: Mutex<Option<Value>>,
    gets: AtomicUsize,
}

pub struct JsonServer {
    /// The document's URL (`http://127.0.0.1:port/doc.json`).
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl JsonServer {
    pub async fn start(document: Value) -> JsonServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/doc.json", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            document: Mutex::new(Some(document)),
            gets: AtomicUsize::new(0),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                "/doc.json",
                web::get().to(|shared: web::Data<Shared>| async move {
                    shared.gets.fetch_add(1, Ordering::SeqCst);
                    match shared.document.lock().unwrap().clone() {
                        Some(doc) => HttpResponse::Ok().json(doc),
                        None => HttpResponse::ServiceUnavailable().finish(),
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        JsonServer {
            url,
            shared,
            handle,
        }
    }

    /// Publishes `document` from now on.
    pub fn set(&self, document: Value) {
        *self.shared.document.lock().unwrap() = Some(document);
    }

    /// Answers 503 from now on (until [`JsonServer::set`]).
    pub fn fail(&self) {
        *self.shared.document.lock().unwrap() = None;
    }

    /// How many GETs were answered so far.
    pub fn gets(&self) -> usize {
        self.shared.gets.load(Ordering::SeqCst)
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
