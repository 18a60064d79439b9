"""One way to run a loopback HTTP server for a test or a tool (the fake
OpenAI server in tests/e2e, the recorded judge): serve_forever in a daemon
thread, and a timer that shuts the server down after `lifetime` seconds at
the latest, so a caller that never stops it cannot hang CI."""
import threading


class Serving:
    def __init__(self, httpd, lifetime, poll_interval=0.5):
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                       daemon=True)
        self.thread.start()
        self.timer = threading.Timer(lifetime, httpd.shutdown)
        self.timer.daemon = True
        self.timer.start()

    def stop(self):
        """Stops serving, closes the socket and waits for the thread."""
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
