//! Host names and the home directory's fallback, in a binary that may link
//! glibc statically.
//!
//! Release builds link glibc statically (`make static`): a cache hit then
//! skips the dynamic loader, which was most of its cost. Static glibc has
//! one weak spot, the Name Service Switch. `files` and `dns` are built into
//! it, but any other service named in `/etc/nsswitch.conf` (Debian's
//! `mdns4_minimal` for hosts, `systemd` for users, `sss`, `ldap`) makes it
//! `dlopen` the system's shared NSS module, which pulls the system's
//! *dynamic* libc into the static process. That works only while the system
//! glibc is the very version dexcred was linked against, and otherwise can
//! fail or crash in the middle of a login.
//!
//! So a static build restricts the host and user databases to the built-in
//! services before its first lookup: host names come from `/etc/hosts` and
//! the DNS servers in `/etc/resolv.conf` (with glibc's own resolver, so
//! search domains, `options` and IPv6 behave as in any other program), and
//! users from `/etc/passwd`. Names only mDNS or LDAP know need the dynamic
//! build (`make build LINKAGE=dynamic`); see docs/performance.md.
//! Dynamic builds use the system's NSS configuration unchanged.

/// Makes the following host and user lookups use glibc's built-in `files`
/// and `dns` services only, in a static build; does nothing otherwise.
/// Call it before resolving a host name or looking up a user; calling it
/// again is harmless.
pub fn builtin_services_only() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
    {
        use std::ffi::{c_char, c_int};
        unsafe extern "C" {
            // glibc's own override of /etc/nsswitch.conf for one database
            // (nscd and glibc's tests use it); in every glibc since 2.0.
            fn __nss_configure_lookup(db: *const c_char, service_line: *const c_char) -> c_int;
        }
        // SAFETY: both arguments are NUL-terminated static strings, and
        // dexcred calls this before it starts any thread that could be
        // resolving a name at the same time.
        unsafe {
            __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr());
            __nss_configure_lookup(c"passwd".as_ptr(), c"files".as_ptr());
        }
    }
}
