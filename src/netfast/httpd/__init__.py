"""A static-file HTTP/1.1 server.

The sans-IO core is :mod:`netfast.httpd.proto` (bytes in, requests out) and
:mod:`netfast.httpd.files` (a request and the file system's answers in, a response plan out);
neither touches a socket or reads a clock.  The application and the backends that drive them
live beside them.
"""
