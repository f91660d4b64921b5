"""Style classifier: reads "user question + assistant answer" and scores it over a set of styles
(by default 售前 / 售后 / 诚实 / 有帮助 / 无伤害), for filtering data and as an RL reward.

Command line: `python -m tools.style {samples,convert,validate,train,predict,serve} --help`.
The verl reward built on it is `rewards/style.py`.
"""
