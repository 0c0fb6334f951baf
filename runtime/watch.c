/* watch: inotify over a directory tree (see watch.h). */
#include "watch.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MASK                                                                        \
    (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct dir_watch {
    int wd;
    char *path;
};

struct watch {
    char *root;
    int delay_ms;
    void (*on_change)(void *ud);
    void *ud;
    int fd;      /* inotify */
    int stop[2]; /* a pipe: written to stop the thread */
    pthread_t thread;
    bool running;           /* thread was started */
    struct dir_watch *dirs; /* what each watch descriptor is */
    size_t ndirs, capdirs;
};

static const char *dir_of(const struct watch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd)
            return w->dirs[i].path;
    return NULL;
}

/* Watches path and every folder under it. Folders that cannot be watched
 * are logged and skipped: the rest still reloads. */
static void add_tree(struct watch *w, const char *path)
{
    int wd = inotify_add_watch(w->fd, path, DIR_MASK);
    if (wd < 0) {
        log_msg(LOG_LEVEL_WARN, NULL, "scripts: cannot watch %s: %s", path,
                strerror(errno));
        return;
    }
    if (!dir_of(w, wd)) {
        if (w->ndirs == w->capdirs) {
            size_t cap = w->capdirs ? w->capdirs * 2 : 16;
            struct dir_watch *v = realloc(w->dirs, cap * sizeof *v);
            if (!v)
                return;
            w->dirs = v;
            w->capdirs = cap;
        }
        char *p = strdup(path);
        if (!p)
            return;
        w->dirs[w->ndirs++] = (struct dir_watch){wd, p};
    }
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char sub[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            continue;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            add_tree(w, sub);
    }
    closedir(d);
}

/* Whether an event is a change of the scripts: a *.lua file or a folder. */
static bool relevant(const struct inotify_event *ev)
{
    if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_ISDIR))
        return true;
    size_t n = ev->len ? strlen(ev->name) : 0;
    return n > 4 && ev->name[0] != '.' && strcmp(ev->name + n - 4, ".lua") == 0;
}

/* Reads what is queued. Returns whether anything relevant happened. */
static bool drain(struct watch *w)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    ssize_t n;

    while ((n = read(w->fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (!relevant(ev))
                continue;
            changed = true;
            if (ev->mask & IN_Q_OVERFLOW) {
                add_tree(w, w->root);
            } else if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                const char *parent = dir_of(w, ev->wd);
                char sub[PATH_MAX];
                if (parent &&
                    snprintf(sub, sizeof sub, "%s/%s", parent, ev->name) < (int)sizeof sub)
                    add_tree(w, sub);
            }
        }
    }
    return changed;
}

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    bool pending = false;

    for (;;) {
        struct pollfd fds[2] = {{w->fd, POLLIN, 0}, {w->stop[0], POLLIN, 0}};
        int rc = poll(fds, 2, pending ? w->delay_ms : -1);
        if (rc < 0 && errno != EINTR) {
            log_msg(LOG_LEVEL_ERROR, NULL, "scripts: watching stopped: %s",
                    strerror(errno));
            break;
        }
        if (fds[1].revents)
            break;
        if (rc > 0 && (fds[0].revents & POLLIN)) {
            if (drain(w))
                pending = true;
            continue; /* quiet for delay_ms first */
        }
        if (rc == 0 && pending) {
            pending = false;
            w->on_change(w->ud);
        }
    }
    return NULL;
}

struct watch *watch_start(const char *root, int delay_ms, void (*on_change)(void *ud),
                          void *ud, struct rt_err *err)
{
    struct watch *w = calloc(1, sizeof *w);

    if (!w || !(w->root = strdup(root))) {
        rt_err_set(err, "out of memory");
        free(w);
        return NULL;
    }
    w->delay_ms = delay_ms;
    w->on_change = on_change;
    w->ud = ud;
    w->stop[0] = w->stop[1] = -1;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || pipe(w->stop) != 0) {
        rt_err_set(err, "inotify: %s", strerror(errno));
        goto fail;
    }
    add_tree(w, root);
    if (w->ndirs == 0) {
        rt_err_set(err, "cannot watch %s", root);
        goto fail;
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        rt_err_set(err, "cannot start the watch thread");
        goto fail;
    }
    w->running = true;
    return w;
fail:
    watch_stop(w);
    return NULL;
}

void watch_stop(struct watch *w)
{
    if (!w)
        return;
    if (w->running) {
        ssize_t n = write(w->stop[1], "x", 1);
        (void)n;
        pthread_join(w->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (w->stop[i] >= 0)
            close(w->stop[i]);
    if (w->fd >= 0)
        close(w->fd);
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i].path);
    free(w->dirs);
    free(w->root);
    free(w);
}
