//! PostgreSQL over TLS: sqlx (with its rustls feature) honours `sslmode` and
//! `sslrootcert` in the database URL, so every URL the pipeline, the API and the HA
//! watcher take can ask for a verified, encrypted connection. The server's certificate
//! is made by the test.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use imgcrawl_tests::{Postgres, TestCerts};
use sqlx::postgres::PgPoolOptions;

/// Copies the server's certificate and key into the data directory (owned by the
/// server's user, key mode 0600, as PostgreSQL demands) and turns TLS on.
async fn enable_tls(pg: &Postgres, certs: &TestCerts) {
    let data = pg.data_dir();
    let owner = std::fs::metadata(&data).expect("data dir");
    for (from, to, mode) in [
        (&certs.server_cert, "server.crt", 0o644),
        (&certs.server_key, "server.key", 0o600),
    ] {
        let dest = data.join(to);
        std::fs::copy(from, &dest).expect("copy certificate");
        std::os::unix::fs::chown(&dest, Some(owner.uid()), Some(owner.gid())).expect("chown");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.admin_url())
        .await
        .expect("connect without tls");
    for stmt in [
        "alter system set ssl_cert_file = 'server.crt'",
        "alter system set ssl_key_file = 'server.key'",
        "alter system set ssl = on",
    ] {
        sqlx::query(stmt).execute(&admin).await.expect(stmt);
    }
    let reloaded: bool = sqlx::query_scalar("select pg_reload_conf()")
        .fetch_one(&admin)
        .await
        .expect("reload");
    assert!(reloaded);
    admin.close().await;
}

async fn connect(url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

/// Whether the connection of `pool` is encrypted, as the server sees it.
async fn encrypted(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn database_urls_honour_sslmode_and_the_ca() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().expect("cert dir");
    let certs = TestCerts::generate(dir.path()).expect("certificates");
    enable_tls(&pg, &certs).await;
    let base = pg.admin_url();
    let ca = certs.ca.display().to_string();

    // verified against the test's CA, by IP address and by name
    let verified = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let pool = connect(&verified).await.expect("verify-full with the ca");
    assert!(encrypted(&pool).await, "verify-full must encrypt");
    let by_name = verified.replace("127.0.0.1", "localhost");
    assert!(encrypted(&connect(&by_name).await.expect("by name")).await);

    // without the CA the certificate cannot be verified: refused, not downgraded
    let unverifiable = format!("{base}?sslmode=verify-full");
    assert!(
        connect(&unverifiable).await.is_err(),
        "an unknown ca must fail"
    );
    let wrong_ca = format!(
        "{base}?sslmode=verify-ca&sslrootcert={}",
        certs.server_cert.display()
    );
    assert!(
        connect(&wrong_ca).await.is_err(),
        "a certificate that is not the ca must fail"
    );

    // require encrypts without verifying; disable does not encrypt
    let required = connect(&format!("{base}?sslmode=require"))
        .await
        .expect("require");
    assert!(encrypted(&required).await);
    let plain = connect(&format!("{base}?sslmode=disable"))
        .await
        .expect("disable");
    assert!(!encrypted(&plain).await);
}
