"""Flask-RESTful's quick start "Full Example" (TodoList) with its docs' "Resource Method Decorators".

The docs (Extending Flask-RESTful, Resource Method Decorators) show a base ``Resource`` whose
``method_decorators`` authenticate every method and ``flask_restful.abort(401)`` otherwise; the
quick start's resources inherit it here. ``basic_authentication`` is the docs' "custom account
lookup function": an API key in the ``X-API-Key`` header.
"""

from functools import wraps

import flask_restful
from flask import Flask, request
from flask_restful import Api, abort, reqparse

API_KEYS = {"Corpus-apikey-Zr81Xw": "alice"}


def basic_authentication():
    return API_KEYS.get(request.headers.get("X-API-Key", ""))


def authenticate(func):
    @wraps(func)
    def wrapper(*args, **kwargs):
        if not getattr(func, "authenticated", True):
            return func(*args, **kwargs)

        acct = basic_authentication()  # custom account lookup function

        if acct:
            return func(*args, **kwargs)

        flask_restful.abort(401)

    return wrapper


class Resource(flask_restful.Resource):
    method_decorators = [authenticate]  # applies to all inherited resources


app = Flask(__name__)
api = Api(app)

TODOS = {
    "todo1": {"task": "build an API"},
    "todo2": {"task": "?????"},
    "todo3": {"task": "profit!"},
}


def abort_if_todo_doesnt_exist(todo_id):
    if todo_id not in TODOS:
        abort(404, message="Todo {} doesn't exist".format(todo_id))


parser = reqparse.RequestParser()
parser.add_argument("task")


# Todo
# shows a single todo item and lets you delete a todo item
class Todo(Resource):
    def get(self, todo_id):
        abort_if_todo_doesnt_exist(todo_id)
        return TODOS[todo_id]

    def delete(self, todo_id):
        abort_if_todo_doesnt_exist(todo_id)
        del TODOS[todo_id]
        return "", 204

    def put(self, todo_id):
        args = parser.parse_args()
        task = {"task": args["task"]}
        TODOS[todo_id] = task
        return task, 201


# TodoList
# shows a list of all todos, and lets you POST to add new tasks
class TodoList(Resource):
    def get(self):
        return TODOS

    def post(self):
        args = parser.parse_args()
        todo_id = int(max(TODOS.keys()).lstrip("todo")) + 1
        todo_id = "todo%i" % todo_id
        TODOS[todo_id] = {"task": args["task"]}
        return TODOS[todo_id], 201


##
## Actually setup the Api resource routing here
##
api.add_resource(TodoList, "/todos")
api.add_resource(Todo, "/todos/<todo_id>")


if __name__ == "__main__":
    app.run(debug=True)
