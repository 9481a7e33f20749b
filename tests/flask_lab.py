"""A Flask-SocketIO app for the rule tests on real servers (``gunicorn tests.flask_lab:app``).

Configured from the environment as Flask apps are (``FLASK_WSGISESSION_TYPE`` ...).
HTTP:   GET /start       a session holding n = 0
        GET /incr        n + 1 inside ``flask.session.atomic()``, yielding inside the block
        GET /set?k=v     sets keys (merged save), yielding before the save
        GET /            the session as JSON; every answer names its worker (X-Worker-Pid)
Socket: ``incr``, ``set`` (a dict): the same as events
"""
import os

import gevent
from flask import Flask, request, session
from flask_socketio import SocketIO
from wsgisession.flask import WsgiSession

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SESSION_SECRET"]
app.config.from_prefixed_env()
socketio = SocketIO(app, message_queue=app.config.get("SOCKETIO_MESSAGE_QUEUE"))
WsgiSession(app, socketio)


def bump():
    with session.atomic():
        n = session.get("n", 0)
        gevent.sleep(0.002)  # another request or event of the session would interleave here
        session["n"] = n + 1
        return session["n"]


@app.after_request
def name_the_worker(response):
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/start")
def start():
    session["n"] = 0
    return {"n": 0}


@app.get("/incr")
def incr_http():
    return {"n": bump()}


@app.get("/set")
def set_http():
    values = dict(request.args)
    gevent.sleep(0.002)
    session.update(values)
    return values


@app.get("/")
def show():
    return dict(session)


@socketio.on("incr")
def incr_event():
    return bump()


@socketio.on("set")
def set_event(values):
    gevent.sleep(0.002)
    session.update(values)
    return os.getpid()
