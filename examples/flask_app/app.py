"""A Flask-SocketIO + Flask-Login app, written the way their documentation writes apps.

It shares one live session between its views and its socket handlers because
of one set-up line, ``WsgiSession(app, socketio)`` (and its import): without
them, this is a stock Flask-SocketIO app whose handlers see a frozen copy of
the session (``docs/flask.rst`` shows the diff; a test rebuilds the stock app
from it and runs both).

HTTP:   GET /  the page (log in, a live counter, log out); POST /login, POST /logout
        and POST /incr take the form's CSRF token; GET /api/me the user and the counter
Socket: ``whoami`` -> the user; ``incr`` -> the counter + 1, also sent as ``count``
        to every tab of the user
"""
import os
import secrets

from flask import Flask, abort, redirect, render_template, request, send_file, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_socketio import SocketIO, emit, join_room
from wsgisession.flask import WsgiSession

CLIENT_JS = os.path.join(os.path.dirname(__file__), "..", "..", "node_modules", "socket.io-client", "dist",
                         "socket.io.min.js")
USERS = {"ann": "ann-password", "bob": "bob-password"}  # a demo's user store

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SESSION_SECRET", "flask-dev-secret-change-me-0123456789-abcdefgh")
app.config.from_prefixed_env()  # FLASK_WSGISESSION_TYPE=memory and friends, from the environment
socketio = SocketIO(app, message_queue=app.config.get("SOCKETIO_MESSAGE_QUEUE"))  # Redis for several workers
WsgiSession(app, socketio)
login_manager = LoginManager(app)


class User(UserMixin):
    def __init__(self, name):
        self.id = name


@login_manager.user_loader
def load_user(user_id):
    return User(user_id) if user_id in USERS else None


def csrf_token():
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    sent = request.form.get("csrf", "")
    if not secrets.compare_digest(sent, session.get("csrf", "")):
        abort(400, "bad or missing CSRF token: reload the page")


@app.get("/")
def index():
    return render_template("index.html", user=current_user, n=session.get("n", 0), csrf=csrf_token())


@app.get("/socket.io.min.js")
def client_js():
    return send_file(os.path.abspath(CLIENT_JS), mimetype="text/javascript")


@app.post("/login")
def login():
    check_csrf()
    name = request.form.get("user", "")
    if name not in USERS or not secrets.compare_digest(request.form.get("password", ""), USERS[name]):
        abort(401, "wrong user or password")
    login_user(User(name))
    session.setdefault("n", 0)
    return redirect(url_for("index"))


@app.post("/logout")
@login_required
def logout():
    check_csrf()
    logout_user()
    return redirect(url_for("index"))


@app.post("/incr")
@login_required
def incr_http():
    check_csrf()
    session["n"] = session.get("n", 0) + 1
    socketio.emit("count", session["n"], to=current_user.id)
    return {"n": session["n"]}


@app.get("/api/me")
def me():
    return {"user": current_user.get_id(), "n": session.get("n", 0)}


@socketio.on("connect")
def on_connect(auth=None):
    if not current_user.is_authenticated:
        return False  # refuse an anonymous visitor's socket
    join_room(current_user.id)


@socketio.on("whoami")
def whoami():
    return current_user.get_id()


@socketio.on("incr")
def incr():
    session["n"] = session.get("n", 0) + 1
    emit("count", session["n"], to=current_user.id)
    return session["n"]


if __name__ == "__main__":
    socketio.run(app)
