/* cnilab's plugin executable in thick mode: hand the call to the node's resident daemon.
 *
 * A runtime runs a CNI plugin once per verb and pod; a Python plugin pays the interpreter's
 * start (~10 ms) every time. When the daemon (.cnilab/daemon.sock beside this file) is up, this
 * shim passes it the call -- environment, the caller's network and mount namespaces, stdin,
 * stdout, stderr -- and exits with the code the daemon reports. The daemon forks a warm Python
 * child that enters those namespaces and runs the same plugin code. When no daemon answers, the
 * shim runs the plugin itself (.cnilab/thin, python3 -IS): same code, same answer, slower.
 *
 * Written in C because only a native program starts in well under a millisecond; it knows
 * nothing of CNI.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static int send_all(int s, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(s, buf, len, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ask_daemon(const char *sock_path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof sa.sun_path) return -1;
    strcpy(sa.sun_path, sock_path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;

    size_t len = 0;
    for (char **e = environ; *e; e++) len += strlen(*e) + 1;
    char *buf = malloc(4 + len);
    if (!buf) return -1;
    uint32_t l = (uint32_t)len;
    memcpy(buf, &l, 4);
    char *p = buf + 4;
    for (char **e = environ; *e; e++) {
        size_t n = strlen(*e) + 1;
        memcpy(p, *e, n);
        p += n;
    }
    int fds[5] = {open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC),
                  0, 1, 2};
    if (fds[0] < 0 || fds[1] < 0) return -1;
    union { char buf[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } control;
    struct iovec iov = {.iov_base = buf, .iov_len = 4 + len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    ssize_t sent = sendmsg(s, &msg, MSG_NOSIGNAL);
    if (sent <= 0) return -1; /* nothing reached the daemon: running the plugin here is still safe */
    if ((size_t)sent < 4 + len && send_all(s, buf + sent, 4 + len - (size_t)sent) != 0) return 2;

    int32_t code;
    size_t got = 0;
    while (got < sizeof code) {
        ssize_t n = read(s, (char *)&code + got, sizeof code - got);
        if (n <= 0) return 137; /* the daemon went away mid-call: report it as a killed plugin */
        got += (size_t)n;
    }
    return code;
}

int main(int argc, char **argv) {
    (void)argc;
    char dir[PATH_MAX], sock_path[PATH_MAX + 32], thin[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) return 1;
    dir[n] = '\0';
    *strrchr(dir, '/') = '\0';
    snprintf(sock_path, sizeof sock_path, "%s/.cnilab/daemon.sock", dir);
    snprintf(thin, sizeof thin, "%s/.cnilab/thin", dir);
    int code = ask_daemon(sock_path);
    if (code >= 0) return code;
    execv(thin, argv);
    fprintf(stderr, "cnilab: cannot run %s: reinstall the plugin (cnilab plugin install BIN_DIR)\n", thin);
    return 1;
}
