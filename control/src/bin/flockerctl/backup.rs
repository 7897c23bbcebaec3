//! `flockerctl volume backup NAME --to DIR [--incremental]` and `volume restore NAME --from DIR
//! [--on NODE]`: backup streams relayed by a control member (docs/volumes.md, "Snapshots,
//! clones and backups").
//!
//! A backup directory holds one volume's chain: per backup, `<snapshot>.stream` (one backend
//! stream, in full or the increment since the previous backup's snapshot) and
//! `<snapshot>.json`, its [`Manifest`]. Both are written beside their final names and renamed
//! into place once complete (the manifest last), so a cut backup leaves no manifest and is
//! not part of the chain.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use proto::control as pb;
use proto::control::operator_api_client::OperatorApiClient;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::output::human;
use super::{Ctx, Failure, Format, call_failed};

/// The size of the data messages a restore sends.
const CHUNK: usize = 1 << 20;

/// What one backup file holds, written beside it as `<snapshot>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format of this file (1).
    pub format: u32,
    /// The volume backed up.
    pub volume: String,
    /// The snapshot the stream brings a copy up to.
    pub snapshot: String,
    /// Its label (`backup-<ms>`).
    pub label: Option<String>,
    /// Its GUID on the owner: the next incremental backup checks the owner still has it.
    pub guid: u64,
    /// The snapshot the stream is an increment from (the previous backup's), or `None` for a
    /// full stream.
    pub base: Option<String>,
    /// The stream file, in this directory.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// When the snapshot was taken, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The storage kind that made the stream (`zfs` or `dir`): only that kind can receive it.
    pub storage: String,
    /// The owner it was taken on.
    pub node: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every manifest in `dir`, in no order.
fn manifests(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "json") {
            let text =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let m: Manifest = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a backup manifest", path.display()))?;
            found.push(m);
        }
    }
    Ok(found)
}

/// The chain of `manifests`, full stream first, each next one an increment from the one
/// before; an error says what is wrong with the directory.
pub fn chain(dir: &Path, mut manifests: Vec<Manifest>) -> anyhow::Result<Vec<Manifest>> {
    let volumes: std::collections::BTreeSet<&str> =
        manifests.iter().map(|m| m.volume.as_str()).collect();
    if volumes.len() > 1 {
        bail!(
            "{} holds backups of several volumes ({}): one directory holds one volume's chain",
            dir.display(),
            volumes.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let mut chain = Vec::new();
    let mut base: Option<String> = None;
    while !manifests.is_empty() {
        let next: Vec<usize> = (0..manifests.len())
            .filter(|i| manifests[*i].base == base)
            .collect();
        match next.as_slice() {
            [i] => {
                let m = manifests.swap_remove(*i);
                base = Some(m.snapshot.clone());
                chain.push(m);
            }
            [] => bail!(
                "{}: the backups {} do not follow from {}: the chain is broken (a file is missing?)",
                dir.display(),
                manifests
                    .iter()
                    .map(|m| m.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                base.as_deref().unwrap_or("a full backup")
            ),
            _ => bail!(
                "{}: several backups follow from {}: one directory holds one chain",
                dir.display(),
                base.as_deref().unwrap_or("nothing (full backups)")
            ),
        }
    }
    Ok(chain)
}

/// Checks every file of the chain against its manifest (size and SHA-256) before anything is
/// sent; the error names the file.
async fn verify(dir: &Path, chain: &[Manifest]) -> anyhow::Result<()> {
    for m in chain {
        let path = dir.join(&m.file);
        let mut file = tokio::fs::File::open(&path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0; CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            ctx.update(&buf[..n]);
        }
        let sum = hex(ctx.finish().as_ref());
        if size != m.size || sum != m.sha256 {
            return Err(Failure::Invalid.with(format!(
                "{} is corrupted: {size} bytes with SHA-256 {sum}, its manifest says {} bytes with {}; nothing was restored",
                path.display(),
                m.size,
                m.sha256
            )));
        }
    }
    Ok(())
}

/// Backs `name` up into `dir`: in full, or with `incremental` from the newest snapshot the
/// directory holds.
pub async fn backup(
    ctx: &Ctx,
    name: String,
    dir: PathBuf,
    incremental: bool,
) -> anyhow::Result<()> {
    let existing = chain(&dir, manifests(&dir)?)?;
    if let Some(other) = existing.iter().find(|m| m.volume != name) {
        bail!(
            "{} holds backups of volume {}: back up {name} into another directory",
            dir.display(),
            other.volume
        );
    }
    let tip = existing.last();
    let base = match (incremental, tip) {
        (true, Some(tip)) => Some(tip),
        (true, None) => bail!(
            "{} holds no backup of {name} to build on: back up without --incremental first",
            dir.display()
        ),
        (false, Some(_)) => bail!(
            "{} already holds a backup chain of {name}: add to it with --incremental, or back up in full into an empty directory",
            dir.display()
        ),
        (false, None) => None,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let channel: Channel = ctx.client().await?;
    let req = pb::BackupRequest {
        name: name.clone(),
        base: base.map(|b| b.snapshot.clone()),
        base_guid: base.map_or(0, |b| b.guid),
    };
    let mut stream = OperatorApiClient::new(channel)
        .backup_volume(req)
        .await
        .map_err(call_failed)?
        .into_inner();
    let header = match stream.next().await {
        Some(Ok(pb::BackupChunk {
            part: Some(pb::backup_chunk::Part::Header(h)),
        })) => h,
        Some(Err(s)) => return Err(call_failed(s)),
        _ => bail!("the control service sent no backup header"),
    };
    let snapshot = header
        .snapshot
        .clone()
        .context("the backup header names no snapshot")?;
    let file = format!("{}.stream", snapshot.name);
    let partial = dir.join(format!(".{file}.partial"));
    let written = async {
        let mut out = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(call_failed)?.part {
                Some(pb::backup_chunk::Part::Data(d)) => {
                    sha.update(&d);
                    size += d.len() as u64;
                    out.write_all(&d).await?;
                }
                _ => bail!("unexpected message in the backup stream"),
            }
        }
        out.sync_all().await?;
        Ok::<_, anyhow::Error>((size, hex(sha.finish().as_ref())))
    };
    let (size, sha256) = match written.await {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!(
                "the backup of {name} failed; nothing was kept in {}",
                dir.display()
            )));
        }
    };
    std::fs::rename(&partial, dir.join(&file))?;
    let manifest = Manifest {
        format: 1,
        volume: header.volume,
        snapshot: snapshot.name.clone(),
        label: snapshot.label.clone(),
        guid: header.guid,
        base: (!header.base.is_empty()).then_some(header.base),
        file,
        size,
        sha256,
        created_ms: snapshot.taken_ms,
        storage: header.storage,
        node: snapshot.node.clone(),
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    let path = dir.join(format!("{}.json", snapshot.name));
    let tmp = dir.join(format!(".{}.json.partial", snapshot.name));
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    match ctx.format {
        Format::Json => super::output::json(&serde_json::to_value(&manifest)?),
        Format::Table => println!(
            "backed up {name} ({}) as {}: {}, {} in {}",
            manifest.node,
            manifest.snapshot,
            match &manifest.base {
                Some(b) => format!("increment since {b}"),
                None => "full".to_owned(),
            },
            human(manifest.size),
            dir.join(&manifest.file).display()
        ),
    }
    Ok(())
}

/// Restores volume `name` from the chain in `dir`, on `node` or one the control service
/// chooses.
pub async fn restore(
    ctx: &Ctx,
    name: String,
    dir: PathBuf,
    node: Option<String>,
) -> anyhow::Result<()> {
    let chain = chain(&dir, manifests(&dir)?)?;
    let Some(last) = chain.last() else {
        return Err(
            Failure::NotFound.with(format!("{} holds no backup (no manifest)", dir.display()))
        );
    };
    verify(&dir, &chain).await?;
    let header = pb::RestoreHeader {
        name: name.clone(),
        node,
        storage: last.storage.clone(),
        snapshots: chain
            .iter()
            .map(|m| pb::UserSnapshot {
                name: m.snapshot.clone(),
                label: m.label.clone(),
                taken_ms: m.created_ms,
                epoch: 0,
                node: String::new(),
                scheduled: false,
            })
            .collect(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let send = |part| pb::RestoreChunk { part: Some(part) };
    tx.send(send(pb::restore_chunk::Part::Header(header)))
        .await?;
    let files: Vec<(PathBuf, pb::RestorePart)> = chain
        .iter()
        .map(|m| {
            (
                dir.join(&m.file),
                pb::RestorePart {
                    snapshot: m.snapshot.clone(),
                    base: m.base.clone().unwrap_or_default(),
                },
            )
        })
        .collect();
    let reader = tokio::spawn(async move {
        for (path, part) in files {
            if tx
                .send(send(pb::restore_chunk::Part::PartHeader(part)))
                .await
                .is_err()
            {
                return Ok(());
            }
            let mut file = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            loop {
                let mut buf = bytes::BytesMut::with_capacity(CHUNK);
                let n = (&mut file).take(CHUNK as u64).read_buf(&mut buf).await?;
                if n == 0 {
                    break;
                }
                if tx
                    .send(send(pb::restore_chunk::Part::Data(buf.freeze())))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    });
    let channel: Channel = ctx.client().await?;
    let restored = OperatorApiClient::new(channel)
        .restore_volume(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let read = reader.await?;
    let v = restored.map_err(call_failed)?.into_inner();
    read?;
    match ctx.format {
        Format::Json => super::output::json(&serde_json::json!({
            "name": v.name, "owner": v.owner, "epoch": v.epoch,
            "snapshots": v.snapshots.iter().map(|s| &s.name).collect::<Vec<_>>(),
        })),
        Format::Table => println!(
            "restored {} on {} from {} backup(s) in {} (up to {})",
            v.name,
            v.owner.as_deref().unwrap_or("-"),
            chain.len(),
            dir.display(),
            last.snapshot
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(snapshot: &str, base: Option<&str>) -> Manifest {
        Manifest {
            format: 1,
            volume: "db".into(),
            snapshot: snapshot.into(),
            label: None,
            guid: 1,
            base: base.map(Into::into),
            file: format!("{snapshot}.stream"),
            size: 0,
            sha256: String::new(),
            created_ms: 0,
            storage: "zfs".into(),
            node: "a".into(),
        }
    }

    #[test]
    fn a_chain_starts_full_and_follows_its_bases() {
        let dir = Path::new("/b");
        let all = vec![m("s3", Some("s2")), m("s1", None), m("s2", Some("s1"))];
        let names: Vec<String> = chain(dir, all)
            .unwrap()
            .into_iter()
            .map(|m| m.snapshot)
            .collect();
        assert_eq!(names, ["s1", "s2", "s3"]);
        assert!(chain(dir, Vec::new()).unwrap().is_empty());
        let broken = chain(dir, vec![m("s1", None), m("s3", Some("s2"))]).unwrap_err();
        assert!(broken.to_string().contains("s3.stream"), "{broken}");
        let forked = chain(
            dir,
            vec![m("s1", None), m("s2", Some("s1")), m("x", Some("s1"))],
        );
        assert!(
            forked
                .unwrap_err()
                .to_string()
                .contains("several backups follow from s1")
        );
        let mut other = m("s2", Some("s1"));
        other.volume = "web".into();
        let mixed = chain(dir, vec![m("s1", None), other]).unwrap_err();
        assert!(mixed.to_string().contains("several volumes"), "{mixed}");
    }
}
