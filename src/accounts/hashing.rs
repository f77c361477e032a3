//! Password hashing: argon2id with OWASP's parameters, at most two hashes at once, each in
//! memory taken from the system for that hash and given back when it ends.
//!
//! Why not `Argon2::hash_password`: its 19 MiB come from malloc. Left to glibc's defaults, the
//! first free raises the mmap threshold and every later hash's 19 MiB stay in the heap (RSS
//! 18 → 57 MB after one sign-in); with the fixed threshold `main` sets they are mapped fresh
//! each time, and faulting in ~4,900 small pages added ~10 ms to every sign-in. Here the
//! buffer asks the kernel for transparent huge pages, which brings a hash back to its warm
//! speed while still being unmapped when it ends.
#![allow(unsafe_code)]

use crate::domain::{Error, Result};
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;

/// How many password hashes run at once. Each holds 19 MiB while it runs, so without a bound
/// twenty sign-ins at once would need ~380 MiB; more than two at once would not finish sooner on
/// the small machines Scalefog is for, as each keeps a core busy.
const HASHES_AT_ONCE: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

/// Runs `f` (a password hash or check) on a blocking thread, at most [`HASHES_AT_ONCE`] at once;
/// the others wait their turn.
pub async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _turn = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)
}

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

/// argon2id with the crate's defaults, which are OWASP's (m=19 MiB, t=2, p=1), as a PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    let params = Params::default();
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            HashMemory::new(params.block_count()),
        )
        .map_err(Error::internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(Error::internal)?,
        salt: Some(Salt::new(&salt).map_err(Error::internal)?),
        hash: Some(Output::new(&out).map_err(Error::internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` is the one `phc` was made from, with the parameters `phc` names (so
/// hashes made by other argon2 settings still verify). Anything unparsable is a mismatch.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let check = || -> Option<bool> {
        let hash = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).ok()?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).ok()?;
        let (salt, expected) = (hash.salt.as_ref()?, hash.hash.as_ref()?);
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt.as_ref(),
                &mut out,
                HashMemory::new(params.block_count()),
            )
            .ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == *expected)
    };
    check().unwrap_or(false)
}

/// A hash's working memory: blocks in a mapping of their own (the allocation is above the
/// mmap threshold), 2 MiB-aligned and advised to the kernel as huge-page memory before the
/// first touch. Dropping it unmaps it.
struct HashMemory {
    blocks: Vec<Block>,
    start: usize,
    len: usize,
}

const HUGE_PAGE: usize = 2 << 20;
const BLOCKS_PER_HUGE_PAGE: usize = HUGE_PAGE / size_of::<Block>();

impl HashMemory {
    fn new(len: usize) -> HashMemory {
        // One huge page more than needed, so an aligned run of `len` blocks fits.
        let mut blocks: Vec<Block> = Vec::with_capacity(len + BLOCKS_PER_HUGE_PAGE);
        let base = blocks.as_mut_ptr() as usize;
        let aligned = base.next_multiple_of(HUGE_PAGE);
        let end = (base + blocks.capacity() * size_of::<Block>()) & !(HUGE_PAGE - 1);
        if end > aligned {
            // SAFETY: [aligned, end) lies inside `blocks`' allocation, which this value owns;
            // MADV_HUGEPAGE only changes how the kernel backs the range, never its contents.
            // Failure (THP off, an old kernel) leaves ordinary pages, which is merely slower.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
        let start = (aligned - base) / size_of::<Block>();
        blocks.resize(start + len, Block::default());
        HashMemory { blocks, start, len }
    }
}

impl AsMut<[Block]> for HashMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        &mut self.blocks[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_two_hashes_run_at_once_and_every_one_gets_its_turn() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (now, most) = (now.clone(), most.clone());
                tokio::spawn(hashing(move || {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    let ok = verify_password("wrong", &hash_password(&format!("pw{i}")).unwrap());
                    now.fetch_sub(1, Ordering::SeqCst);
                    ok
                }))
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap().unwrap());
        }
        assert_eq!(most.load(Ordering::SeqCst), HASHES_AT_ONCE);
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert!(!verify_password("correct horse", "not a phc string"));
    }

    #[test]
    fn hashes_made_by_the_crate_itself_still_verify() {
        use argon2::password_hash::PasswordHasher;
        // What every stored password was hashed with before this module.
        let old = Argon2::default()
            .hash_password(b"s3cret-pass")
            .unwrap()
            .to_string();
        assert!(verify_password("s3cret-pass", &old));
        assert!(!verify_password("s3cret-pasS", &old));
        // And the crate verifies ours.
        let ours = PasswordHash::new(&hash_password("s3cret-pass").unwrap()).unwrap();
        use argon2::password_hash::PasswordVerifier;
        assert!(
            Argon2::default()
                .verify_password(b"s3cret-pass", &ours)
                .is_ok()
        );
    }

    #[test]
    fn other_parameters_are_honoured() {
        use argon2::password_hash::PasswordHasher;
        let light = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(1024, 1, 1, Some(24)).unwrap(),
        );
        let phc = light.hash_password(b"pw-123456").unwrap().to_string();
        assert!(verify_password("pw-123456", &phc));
        assert!(!verify_password("pw-123457", &phc));
    }
}
