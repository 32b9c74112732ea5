//! ECR reads: a repository's URI, an image by tag, and the one way a release's image is
//! resolved (render, diff, verify and release all use [`resolve_release_image`]).

use crate::exit::{Code, Failure};

/// Looks up an ECR repository's URI; a missing repository is an error that says so.
pub async fn repository_uri(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
) -> Result<String, Failure> {
    match ecr.describe_repositories().repository_names(repository).send().await {
        Ok(out) => out
            .repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .map(str::to_string)
            .ok_or_else(|| Failure::msg(Code::Aws, format!("ECR repository {repository} has no URI"))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_not_found_exception()) => Err(
            Failure::msg(Code::Aws, format!("ECR repository `{repository}` does not exist in this account and region"))
                .with_hint("create it (terraform/ modules create it), or fix ecr_repository in deployer.toml / the region"),
        ),
        Err(e) => Err(crate::aws::failure("ECR DescribeRepositories", e)),
    }
}

/// The digest and config digest (image id) of `repository:tag` in ECR, if the tag exists.
pub async fn ecr_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<Option<(String, Option<String>)>, Failure> {
    let out = ecr
        .batch_get_image()
        .repository_name(repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
        )
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .map_err(|e| crate::aws::failure("ECR BatchGetImage", e))?;
    let Some(img) = out.images().first() else {
        return Ok(None);
    };
    let digest = img
        .image_id()
        .and_then(|i| i.image_digest())
        .unwrap_or_default()
        .to_string();
    let config = img
        .image_manifest()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| {
            m.pointer("/config/digest")
                .and_then(|d| d.as_str())
                .map(str::to_string)
        });
    Ok(Some((digest, config)))
}

/// A release's image and what ECR says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseImage {
    /// In the environment's repository. `image` is as asked (`<uri>:<sha>` or the --image
    /// value); `pinned` is `<uri>@<digest>`.
    Found {
        image: String,
        pinned: String,
        digest: String,
    },
    /// In the environment's repository, but not pushed (yet): a release may build it.
    Missing { image: String },
    /// An --image outside the environment's repository: ours to trust, not to check.
    External { image: String },
}

impl ReleaseImage {
    /// The image as asked for.
    pub fn image(&self) -> &str {
        match self {
            ReleaseImage::Found { image, .. }
            | ReleaseImage::Missing { image, .. }
            | ReleaseImage::External { image } => image,
        }
    }

    pub fn digest(&self) -> Option<&str> {
        match self {
            ReleaseImage::Found { digest, .. } => Some(digest),
            _ => None,
        }
    }
}

/// The release's image: `flag` (an --image) or `<repository uri>:<git sha>`, looked up in the
/// environment's repository when it lives there (by tag or by digest).
pub async fn resolve_release_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    flag: Option<&str>,
    git_sha: &str,
) -> Result<ReleaseImage, Failure> {
    let uri = repository_uri(ecr, repository).await?;
    let image = flag
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{uri}:{git_sha}"));
    let id = if let Some(digest) = image.strip_prefix(&format!("{uri}@")) {
        aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest)
            .build()
    } else if let Some(tag) = image.strip_prefix(&format!("{uri}:")) {
        aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(tag)
            .build()
    } else {
        return Ok(ReleaseImage::External { image });
    };
    let missing = || ReleaseImage::Missing {
        image: image.clone(),
    };
    match ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(id)
        .send()
        .await
    {
        Ok(out) => Ok(match out.image_details().first() {
            Some(d) => {
                let digest = d.image_digest().unwrap_or_default().to_owned();
                ReleaseImage::Found {
                    pinned: format!("{uri}@{digest}"),
                    image: image.clone(),
                    digest,
                }
            }
            None => missing(),
        }),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Ok(missing())
        }
        Err(e) => Err(crate::aws::failure(
            &format!("ECR DescribeImages {image}"),
            e,
        )),
    }
}
