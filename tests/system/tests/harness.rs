//! Proves the local test environment is real: each service does real work through the same
//! client libraries the product uses.

use std::time::Duration;

use anyhow::Context;
use bollard::Docker;
use futures::StreamExt;

#[tokio::test]
async fn postgres_writes_and_reads_back_a_row() -> anyhow::Result<()> {
    let db = test_support::fresh_database().await?;
    let pool = db.pool().await?;
    sqlx::query("CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let id: i64 = sqlx::query_scalar("INSERT INTO notes (body) VALUES ($1) RETURNING id")
        .bind("hello")
        .fetch_one(&pool)
        .await?;
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(body, "hello");
    Ok(())
}

#[tokio::test]
async fn redis_stream_round_trips_through_a_consumer_group() -> anyhow::Result<()> {
    use redis::AsyncCommands;
    use redis::streams::{StreamReadOptions, StreamReadReply};
    let r = test_support::redis().await?;
    let mut c = r.connection().await?;
    let stream = format!("{}:stream:test", r.prefix);
    let _: () = c.xgroup_create_mkstream(&stream, "g", "$").await?;
    let id: String = c.xadd(&stream, "*", &[("task", "t-1")]).await?;
    let reply: StreamReadReply = c
        .xread_options(
            &[&stream],
            &[">"],
            &StreamReadOptions::default().group("g", "c1").count(10),
        )
        .await?;
    let entries = &reply.keys[0].ids;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
    assert_eq!(entries[0].get::<String>("task").as_deref(), Some("t-1"));
    let acked: i64 = c.xack(&stream, "g", &[&id]).await?;
    assert_eq!(acked, 1);
    let _: () = c.del(&stream).await?;
    Ok(())
}

#[tokio::test]
async fn moto_creates_an_ecr_repository_and_an_ecs_cluster() -> anyhow::Result<()> {
    let aws = test_support::aws().await?;
    let ecr = aws_sdk_ecr::Client::new(&aws.config);
    let repo = ecr
        .create_repository()
        .repository_name("platform")
        .send()
        .await
        .context("CreateRepository")?;
    let uri = repo
        .repository()
        .and_then(|r| r.repository_uri())
        .unwrap_or_default();
    assert!(
        uri.contains(&aws.account_id),
        "repository URI {uri} names the test's account"
    );

    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name("staging").send().await?;
    let described = ecs.describe_clusters().clusters("staging").send().await?;
    let cluster = &described.clusters()[0];
    assert_eq!(cluster.cluster_name(), Some("staging"));
    assert_eq!(cluster.status(), Some("ACTIVE"));

    // Another account sees neither: tests are isolated from each other.
    let other = test_support::aws().await?;
    let repos = aws_sdk_ecr::Client::new(&other.config)
        .describe_repositories()
        .send()
        .await?;
    assert!(repos.repositories().is_empty());
    Ok(())
}

/// A tar build context holding a Dockerfile `FROM scratch` and one file: no base image to pull.
fn tiny_context(marker: &str) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in [
        (
            "Dockerfile",
            "FROM scratch\nCOPY marker.txt /marker.txt\n".to_string(),
        ),
        ("marker.txt", format!("{marker}\n")),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_bytes())?;
    }
    Ok(tar.into_inner()?)
}

#[tokio::test]
async fn docker_builds_and_pushes_an_image_to_the_local_registry() -> anyhow::Result<()> {
    use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
    let registry = test_support::registry().await?;
    let docker = Docker::connect_with_local_defaults()
        .context("the Docker engine is not reachable")?
        .negotiate_version()
        .await?;
    let repo_name = test_support::unique("harness/tiny-");
    let image = format!("{registry}/{repo_name}");
    let marker = test_support::unique("m");

    let opts = BuildImageOptionsBuilder::default()
        .t(&format!("{image}:v1"))
        .rm(true)
        .build();
    let mut build = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(tiny_context(&marker)?.into())),
    );
    while let Some(msg) = build.next().await {
        let msg = msg.context("docker build")?;
        if let Some(err) = msg.error_detail.and_then(|d| d.message) {
            anyhow::bail!("docker build failed: {err}");
        }
    }

    let mut push = docker.push_image(
        &image,
        Some(PushImageOptionsBuilder::default().tag("v1").build()),
        None,
    );
    while let Some(msg) = push.next().await {
        let msg = msg.context("docker push")?;
        if let Some(err) = msg.error_detail.and_then(|d| d.message) {
            anyhow::bail!("docker push failed: {err}");
        }
    }

    let manifest: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repo_name}/manifests/v1"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(manifest["schemaVersion"], 2);
    let layers = manifest["layers"]
        .as_array()
        .context("manifest has layers")?;
    assert_eq!(layers.len(), 1, "one COPY layer: {manifest}");
    Ok(())
}
