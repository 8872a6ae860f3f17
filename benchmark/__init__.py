"""The benchmark sweep: many (language, objective, shape, seed) jobs through the four stages, on Ray.

Not a fifth stage: a driver that runs the stages (compile, train, compare) per
job and assembles tables from the artifact and report folders the jobs wrote.
Every call into a stage goes through ``benchmark.adapter``; importing this
package imports nothing else.
"""
