from setuptools import setup

setup(
    name="wsgisession",
    version="0.1.0",
    description="One shared, live, safe session for a WSGI app and its Socket.IO events (gevent, Beaker).",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.10",
    packages=["wsgisession", "wsgisession.backends", "wsgisession_examples",
              "wsgisession_examples.chat", "wsgisession_examples.counter"],
    package_dir={"wsgisession_examples": "examples"},
    package_data={"wsgisession": ["py.typed"], "wsgisession_examples.chat": ["page.html"]},
    install_requires=[
        "gevent>=24.2",
        "gevent-websocket>=0.10.1",
        "python-socketio>=5.16.2",
        "python-engineio>=4.13.2",
        "Werkzeug>=3.0",
        "Beaker>=1.13",
        "itsdangerous>=2.1",
        "PasteDeploy>=3.0",
        "gunicorn[gevent]>=23.0",
    ],
    extras_require={
        "redis": ["redis>=5.0"],
        "test": [
            "redis>=5.0",
            "pytest>=8",
            "hypothesis>=6.100",
            "python-socketio[client]>=5.16.2",
            "websocket-client>=1.7",
            "requests>=2.31",
            "mypy>=1.10",
            "types-redis",
            "types-gevent",
        ],
    },
    entry_points={
        "console_scripts": ["wsgisession = wsgisession.serve:main"],
        "paste.filter_app_factory": ["main = wsgisession.app:filter_app_factory"],
        "paste.app_factory": [
            "chat = wsgisession_examples.chat:app_factory",
            "counter = wsgisession_examples.counter:app_factory",
        ],
        "beaker.backends": [
            "wsgisession.file = wsgisession.backends.file:FileNamespaceManager",
            "wsgisession.redis = wsgisession.backends.redis:RedisNamespaceManager",
        ],
    },
    classifiers=[
        "Framework :: Paste",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
    ],
)
