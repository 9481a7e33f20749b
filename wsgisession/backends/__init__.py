"""Pickle-free Beaker backends: session data is JSON text, stored verbatim.

Beaker's own file, dbm and Redis containers unpickle what they read
(CVE-2013-7489), so whoever can write to the store could run code. These
namespace managers store and return ``str`` values only. They are registered
as Beaker backends (``beaker.backends`` entry points ``wsgisession.file``,
``wsgisession.redis`` and ``wsgisession.memory``) and are what ``type = file``,
``type = ext:redis`` and ``type = memory`` mean under wsgisession. Used under
plain Beaker instead, they still never
unpickle, but Beaker's ``Session`` serializes the data itself before storing
it, with pickle unless ``data_serializer = json``: set that, or it unpickles.
"""
