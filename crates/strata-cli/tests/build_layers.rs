//! A build step's overlay upper dir becomes the unpacked layer directly (it
//! is not unpacked again from the blob): the roots a store builds this way
//! must be the roots another store gets by unpacking the same blobs.

mod common;

use common::*;

/// Every path of the image's root with type/mode, owner, size, mtime and,
/// for files, content digest (from inside a container, so through overlay).
/// Not `/` itself nor the mount points /proc, /dev and /sys, nor what the
/// container's init layer adds (`/.dockerenv`, `/etc/hosts`, …): their
/// times are the container's start.
fn listing(env: &Env, image: &str) -> String {
    env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "find / -xdev -mindepth 1 ! -path /proc ! -path /dev ! -path /sys ! -path /.dockerenv \
           ! -path /etc/hosts ! -path /etc/hostname ! -path /etc/resolv.conf ! -path /etc/mtab | sort | while read -r p; do \
           s=$(stat -c '%f %u:%g %s %Y' \"$p\"); \
           if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then s=\"$s $(md5sum < \"$p\" | cut -c1-32)\"; fi; \
           if [ -L \"$p\" ]; then s=\"$s -> $(readlink \"$p\")\"; fi; \
           echo \"$p $s\"; done",
    ])
}

#[test]
fn adopted_step_layers_equal_layers_unpacked_from_their_blobs() {
    let built = Env::new();
    let Some(_) = built.import_busybox() else { return };
    let ctx = built.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("copied.txt"), "copied\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /app/sub && echo one > /app/one && echo s > /app/sub/s && ln -s one /app/link \
             && ln /app/one /app/hard && chmod 0750 /app/sub && chown 12:34 /app/one && rm /bin/vi \
             && chmod 0700 /etc && mkdir -p /gone/deep && echo g > /gone/deep/g\n\
         COPY copied.txt /app/\n\
         RUN echo two >> /app/one && rm -rf /app/sub && mkdir /app/sub && echo new > /app/sub/new \
             && rm -r /gone && rm /app/link && ln -s sub/new /app/link\n\
         RUN rm /app/hard && touch -d @1000000000 /app/copied.txt\n",
    )
    .unwrap();
    built.ok(&["build", "-q", "-t", "layers:1", ctx.to_str().unwrap()]);
    // Every step's layer is unpacked when the build ends, the last one too
    // (nothing needed it yet: it is there because its upper dir was kept).
    let unpacked = std::fs::read_dir(built.root().join("layers"))
        .unwrap()
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(unpacked, 5, "busybox and the four steps' layers");
    let here = listing(&built, "layers:1");
    assert!(here.contains("/app/one 81a4 12:34 8 "), "{here}");
    assert!(here.contains("/app/link a1ff 0:0 7 "), "{here}");
    assert!(!here.contains("/gone"), "{here}");
    assert!(!here.contains("/app/sub/s"), "{here}");
    assert!(!here.contains("/bin/vi "), "{here}");
    built.ok(&["system", "check"]);

    // The same image in a store that unpacks every layer from its blob.
    let archive = built.path("layers.tar");
    built.ok(&["save", "-o", archive.to_str().unwrap(), "layers:1"]);
    let loaded = Env::new();
    loaded.ok(&["load", "-i", archive.to_str().unwrap()]);
    let there = listing(&loaded, "layers:1");
    assert_eq!(here, there);

    // A rebuild from the cache in the first store still runs the same root.
    built.ok(&["build", "-q", "-t", "layers:2", ctx.to_str().unwrap()]);
    assert_eq!(listing(&built, "layers:2"), here);
}
