//! `strata build` flags and predefined arguments, end to end: several `-t`,
//! `-f NAME` with `NAME.dockerignore`, the proxy arguments RUN sees without
//! an ARG (and that stay out of the image), the platform arguments,
//! `--iidfile`, `--label`.

mod common;

use common::Env;

fn context(env: &Env, files: &[(&str, &str)]) -> String {
    let dir = env.path("ctx");
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

#[test]
fn tags_dockerfile_ignore_proxy_and_platform_args_iidfile_label() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let ctx = context(
        &env,
        &[
            (
                "build/app.Dockerfile",
                "FROM busybox\n\
                 COPY . /ctx/\n\
                 RUN echo \"proxy=$HTTP_PROXY no=$no_proxy\" > /proxy\n\
                 ARG TARGETPLATFORM\n\
                 ARG BUILDOS\n\
                 RUN echo \"$TARGETPLATFORM $BUILDOS\" > /platform\n",
            ),
            // Beside the Dockerfile: wins over the context's .dockerignore.
            ("build/app.Dockerfile.dockerignore", "secret.txt\nbuild\n"),
            (".dockerignore", "kept-by-named-ignore.txt\n"),
            ("secret.txt", "s"),
            ("kept-by-named-ignore.txt", "k"),
            ("app.txt", "a"),
        ],
    );
    let iid = env.path("iid");
    let df = format!("{ctx}/build/app.Dockerfile");
    env.ok(&[
        "build",
        "-q",
        "-f",
        &df,
        "-t",
        "app:1",
        "-t",
        "app:latest",
        "-t",
        "other/name:2",
        "--label",
        "org.example.team=core",
        "--build-arg",
        "HTTP_PROXY=http://proxy.example:3128",
        "--build-arg",
        "no_proxy=localhost",
        "--iidfile",
        iid.to_str().unwrap(),
        &ctx,
    ]);
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    for t in ["app:1", "app:latest", "other/name:2"] {
        assert_eq!(env.ok(&["inspect", "--format", "{{.Id}}", t]).trim(), id, "{t}");
    }
    let ls = |path: &str| env.ok(&["run", "--rm", "app:1", "sh", "-c", &format!("ls -a {path} | sort")]);
    let files = ls("/ctx");
    assert!(
        files.contains("app.txt") && files.contains("kept-by-named-ignore.txt"),
        "{files}"
    );
    assert!(!files.contains("secret.txt") && !files.contains("build"), "{files}");
    let cat = |f: &str| env.ok(&["run", "--rm", "app:1", "cat", f]);
    assert_eq!(cat("/proxy").trim(), "proxy=http://proxy.example:3128 no=localhost");
    let os = std::env::consts::OS;
    let platform = cat("/platform");
    assert!(
        platform.starts_with(&format!("{os}/")) && platform.trim().ends_with(&format!(" {os}")),
        "{platform}"
    );
    // The proxy values are in no config and no history (as Docker).
    let inspect = env.ok(&["inspect", "app:1"]);
    let history = env.ok(&["history", "--no-trunc", "app:1"]);
    assert!(!inspect.contains("proxy.example"), "{inspect}");
    assert!(!history.contains("proxy.example"), "{history}");
    assert!(inspect.contains("\"org.example.team\": \"core\""), "{inspect}");
    // Nor in the cache key: another proxy keeps every step cached.
    let again = env.ok(&[
        "build",
        "-q",
        "-f",
        &df,
        "--label",
        "org.example.team=core",
        "--build-arg",
        "HTTP_PROXY=http://elsewhere.example:8080",
        "--build-arg",
        "no_proxy=localhost",
        &ctx,
    ]);
    assert_eq!(again.trim(), id);
}
