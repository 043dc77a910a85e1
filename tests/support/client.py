"""A signed-in user of a running service, over HTTP: start downloads, read them, wait for a status."""

import requests

from support import wait_until


class Client:
    def __init__(self, service, token):
        self.api = f"{service.base}/api"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def start(self, quality="480p", content_id="movie"):
        response = self.http.post(
            f"{self.api}/downloads/start", json={"content_id": content_id, "quality": quality}, timeout=10
        )
        assert response.status_code == 202, response.text
        return response.json()["download"]["id"]

    def downloads(self):
        return {d["id"]: d for d in self.http.get(f"{self.api}/downloads", timeout=10).json()["downloads"]}

    def wait_all(self, ids, status, timeout):
        def reached():
            try:
                current = self.downloads()
            except (requests.RequestException, ValueError, KeyError):
                return False  # the API may still answer 503 while a dependency comes back
            return all(current[i]["status"] == status for i in ids) and current

        return wait_until(reached, timeout=timeout, interval=0.1, message=f"all {status}")
